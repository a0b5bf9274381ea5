"""fastbp's backends compared in one process, printed as one report.

    python benchmarks/report.py [--dtype float32|float64] [--quick] [--repeats N]
                                [--pause SECONDS] [--no-torch] [--gemm auto|scipy|mkl]

Four tables, then the performance targets with each marked met or not met:

1. training step, µs per step, per config: the Cython backend, the NumPy
   backend, the GEMM floor (the step's GEMM calls alone, through the same BLAS)
   and PyTorch on the CPU (when installed, with as many threads as the BLAS);
   ratios NumPy/Cython, Cython/floor, PyTorch/Cython;
2. predict throughput, rows/s, over 10 000 rows (2 000 with --quick);
3. one epoch over 20 000 samples of the tiny config, batch 32;
4. a training step of each layer type (Maxout, PReLU, Activation, Dropout, a
   softmax output) on the small config's shapes, Cython against NumPy.

Method (docs/design.md §4). The machine is shared and noisy, so figures are ratios
taken in this one process, never absolute times compared across runs:

- every contender is warmed up first, and a block size k is chosen so that k
  back-to-back calls take about 40 ms (10 ms with --quick);
- then come --repeats rounds; each round times one block of k calls of every
  contender, one after the other, in an order rotated from round to round;
- a figure is the median over rounds of the per-call time, and a ratio is the
  median over rounds of that round's ratio, so both sides of a ratio are
  measured within moments of each other;
- before each block the script sleeps --pause seconds, then (when the block
  holds more than one call) makes one untimed call to wake the BLAS up. NumPy and the
  compiled kernels use two different OpenBLAS
  builds (NumPy's and SciPy's), each with its own worker threads, which keep
  spinning for about 0.1 s after a call; without the pause, one library's
  spinning workers steal a core from the other's next block on a 2-core
  machine and the figures swing several-fold (--pause 0 shows it).

The fastbp contenders are called through the backends' hot-path methods
(step, epoch, predict) on arrays prepared once, skipping the input validation
the public Sequential methods do per call. Everything trains with plain SGD at
lr 0.01; successive steps take the next of 8 distinct batches. See workloads.py.
"""

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)  # run as a script: measure this checkout's fastbp

import numpy as np  # noqa: E402

import fastbp  # noqa: E402
from benchmarks import workloads  # noqa: E402
from benchmarks.workloads import CONFIGS  # noqa: E402

EPOCH_CONFIG = "tiny"
EPOCH_SAMPLES = 20_000


@dataclass(frozen=True)
class Settings:
    """How long and how carefully to measure."""

    dtype: str
    rounds: int
    block_seconds: float  # time one block of k calls should take
    warmup_seconds: float  # least warm-up time per contender
    pause_seconds: float  # sleep before each block
    predict_rows: int
    use_torch: bool
    gemm: str | None  # provider to use, None: as loaded


def parse_settings(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument(
        "--quick", action="store_true", help="few short rounds: a smoke run in well under a minute"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="rounds per measurement (default 11, or 3 with --quick)",
    )
    parser.add_argument(
        "--pause",
        type=float,
        default=0.15,
        help="seconds to sleep before each timed block (default 0.15)",
    )
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    parser.add_argument(
        "--gemm",
        choices=fastbp.gemm.CHOICES,
        default=None,
        help="the compiled engine's GEMM provider (default: FASTBP_GEMM, else auto)",
    )
    args = parser.parse_args(argv)
    rounds = args.repeats if args.repeats is not None else (3 if args.quick else 11)
    if rounds < 1:
        parser.error("--repeats must be at least 1")
    return Settings(
        dtype=args.dtype,
        rounds=rounds,
        block_seconds=0.01 if args.quick else 0.04,
        warmup_seconds=0.02 if args.quick else 0.2,
        pause_seconds=max(0.0, args.pause),
        predict_rows=2_000 if args.quick else 10_000,
        use_torch=not args.no_torch,
        gemm=args.gemm,
    )


# --- measuring -----------------------------------------------------------------------------


def warm_up(call, least_seconds):
    """Call at least 3 times and for least_seconds; returns the median call time
    in seconds, the first call left out."""
    call()
    times = []
    started = time.perf_counter()
    while len(times) < 3 or time.perf_counter() - started < least_seconds:
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


class Timings:
    """Seconds per call of each contender, one figure per round."""

    def __init__(self, per_round):
        self.per_round = per_round  # name -> [seconds per call in round r]

    def __contains__(self, name):
        return name in self.per_round

    def seconds(self, name):
        """Median over rounds of the seconds per call."""
        return statistics.median(self.per_round[name])

    def spread(self, name):
        """Slowest round over fastest round: near 1 when the machine was steady."""
        return max(self.per_round[name]) / min(self.per_round[name])

    def ratio(self, numerator, denominator):
        """Median over rounds of numerator's time / denominator's time; None when
        either was not measured."""
        if numerator not in self.per_round or denominator not in self.per_round:
            return None
        pairs = zip(self.per_round[numerator], self.per_round[denominator])
        return statistics.median(a / b for a, b in pairs)


def prepare(call):
    """Run a contender's untimed set-up (workloads.with_gemm's provider switch)."""
    before = getattr(call, "before", None)
    if before is not None:
        before()


def interleaved(contenders, settings):
    """Time zero-argument callables against each other in rounds (see the module
    docstring) and return their Timings."""
    names = list(contenders)
    block = {}
    for name in names:
        prepare(contenders[name])
        single = warm_up(contenders[name], settings.warmup_seconds)
        block[name] = max(1, round(settings.block_seconds / single))
    per_round = {name: [] for name in names}
    for r in range(settings.rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            call, k = contenders[name], block[name]
            time.sleep(settings.pause_seconds)
            prepare(call)
            if k > 1:
                call()  # wakes the BLAS workers up outside the timed block
            t0 = time.perf_counter()
            for _ in range(k):
                call()
            per_round[name].append((time.perf_counter() - t0) / k)
    return Timings(per_round)


# --- the three measurements ----------------------------------------------------------------


def torch_module(settings):
    """torch with its thread count set to the BLAS's, or None."""
    if not settings.use_torch:
        return None
    torch = workloads.import_torch()
    if torch is not None:
        torch.set_num_threads(workloads.cpu_threads())
    return torch


def measure_steps(settings, torch):
    """{config name: Timings of cython, numpy, floor (and torch) steps}."""
    results = {}
    for config in CONFIGS.values():
        batches = workloads.make_batches(config, settings.dtype)
        cython_model = workloads.make_model(config, "cython", settings.dtype)
        numpy_model = workloads.make_model(config, "numpy", settings.dtype)
        contenders = {
            "cython": workloads.fastbp_step(cython_model, batches),
            "numpy": workloads.fastbp_step(numpy_model, batches),
            "floor": workloads.gemm_floor(cython_model, batches),
        }
        if torch is not None:
            contenders["torch"] = workloads.TorchMLP(numpy_model).step(batches)
        check_same_loss(config, contenders)
        results[config.name] = interleaved(contenders, settings)
    return results


def check_same_loss(config, step_contenders):
    """Stop if the contenders' steps disagree on the loss: then they would not be
    doing the same work. Runs the cython step first so the floor's workspaces
    hold a real step's values."""
    losses = {}
    for name, step in step_contenders.items():
        if name == "floor":
            continue
        result = step()
        losses[name] = float(result[0] if isinstance(result, tuple) else result)
    reference = losses["numpy"]
    for name, loss in losses.items():
        if not np.isclose(loss, reference, rtol=1e-4):
            sys.exit(
                f"{config.name}: {name} step gives loss {loss}, NumPy gives {reference}; "
                "the contenders do not compute the same step"
            )


def measure_predict(settings, torch):
    """{config name: Timings of cython, numpy (and torch) over predict_rows rows}."""
    results = {}
    for config in CONFIGS.values():
        X = workloads.predict_data(config, settings.dtype, settings.predict_rows)
        numpy_model = workloads.make_model(config, "numpy", settings.dtype)
        contenders = {
            "cython": workloads.fastbp_predict(
                workloads.make_model(config, "cython", settings.dtype), X
            ),
            "numpy": workloads.fastbp_predict(numpy_model, X),
        }
        if torch is not None:
            contenders["torch"] = workloads.TorchMLP(numpy_model).predict(X)
        results[config.name] = interleaved(contenders, settings)
    return results


def measure_epoch(settings, torch):
    """Timings of one epoch of the tiny config for cython, numpy (and torch)."""
    config = CONFIGS[EPOCH_CONFIG]
    X, y, order = workloads.epoch_data(config, settings.dtype, EPOCH_SAMPLES)
    contenders = {}
    for backend in ("cython", "numpy"):
        model = workloads.make_model(config, backend, settings.dtype)
        contenders[backend] = workloads.fastbp_epoch(model, X, y, order, config.batch_size)
    if torch is not None:
        model = workloads.make_model(config, "numpy", settings.dtype)
        contenders["torch"] = workloads.TorchMLP(model).epoch(X, y, order, config.batch_size)
    return interleaved(contenders, settings)


def measure_layers(settings):
    """{layer model name: Timings of cython and numpy steps} on the small config."""
    config = CONFIGS[workloads.LAYER_CONFIG]
    batches = workloads.make_batches(config, settings.dtype)
    results = {}
    for name in workloads.LAYER_MODELS:
        contenders = {
            backend: workloads.fastbp_step(
                workloads.make_layer_model(name, backend, settings.dtype), batches
            )
            for backend in ("cython", "numpy")
        }
        check_same_loss(config, contenders)
        results[name] = interleaved(contenders, settings)
    return results


# --- printing --------------------------------------------------------------------------------


def fmt_ratio(value):
    return "-" if value is None else f"{value:.2f}x"


def fmt_number(value, digits=1):
    return "-" if value is None else f"{value:,.{digits}f}"


def print_table(title, header, rows):
    """A title, then columns right-aligned to their widest cell (the first left)."""
    widths = [max(len(str(row[i])) for row in [header] + rows) for i in range(len(header))]

    def line(cells):
        first = str(cells[0]).ljust(widths[0])
        return "  ".join([first] + [str(c).rjust(w) for c, w in zip(cells[1:], widths[1:])])

    print(f"\n{title}")
    print(line(header))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))


def print_header(settings, torch):
    provider = fastbp.gemm.current()
    cython_blas = f"{provider.name} ({provider.version})"
    print(
        f"fastbp {fastbp.__version__} benchmark report: dtype {settings.dtype}, "
        f"{settings.rounds} rounds, pause {settings.pause_seconds:g} s, "
        f"block ~{settings.block_seconds * 1e3:g} ms"
    )
    print(
        f"python {sys.version.split()[0]}, numpy {np.__version__}, "
        f"{workloads.cpu_threads()} BLAS threads; Cython GEMMs go through {cython_blas}"
    )
    if torch is None:
        print("torch: not measured" + ("" if settings.use_torch else " (--no-torch)"))
    else:
        print(f"torch {torch.__version__}: {torch.get_num_threads()} threads")
    if hasattr(os, "getloadavg"):
        print(
            f"load average before starting: {os.getloadavg()[0]:.2f} "
            f"(on {workloads.cpu_threads()} CPUs; other work makes the figures noisier)"
        )
    print("figures: medians over rounds; ratios: medians of per-round ratios")


def step_table(steps):
    """Title, header and rows of the training-step table."""
    rows = []
    for config in CONFIGS.values():
        t = steps[config.name]
        us = [
            fmt_number(t.seconds(name) * 1e6 if name in t else None)
            for name in ("cython", "numpy", "floor", "torch")
        ]
        rows.append(
            [
                config.name,
                config.shape_label,
                config.batch_size,
                *us,
                fmt_ratio(t.ratio("numpy", "cython")),
                fmt_ratio(t.ratio("cython", "floor")),
                fmt_ratio(t.ratio("torch", "cython")),
            ]
        )
    return (
        "Training step: µs per step (lower is faster); NumPy/Cython and PyTorch/Cython "
        "above 1 mean Cython is faster; Cython/floor is the step over its GEMMs alone",
        [
            "config",
            "layers",
            "batch",
            "Cython",
            "NumPy",
            "floor",
            "PyTorch",
            "NumPy/Cython",
            "Cython/floor",
            "PyTorch/Cython",
        ],
        rows,
    )


def layers_table(layer_steps):
    """Title, header and rows of the layer-types table."""
    config = CONFIGS[workloads.LAYER_CONFIG]
    rows = [
        [
            name,
            fmt_number(t.seconds("cython") * 1e6),
            fmt_number(t.seconds("numpy") * 1e6),
            fmt_ratio(t.ratio("numpy", "cython")),
        ]
        for name, t in layer_steps.items()
    ]
    return (
        f"Layer types: µs per training step on the {config.name} config's shapes "
        f"({config.shape_label}, batch {config.batch_size})",
        ["model", "Cython", "NumPy", "NumPy/Cython"],
        rows,
    )


def predict_table(predictions, n_rows):
    """Title, header and rows of the predict table."""
    rows = []
    for config in CONFIGS.values():
        t = predictions[config.name]
        per_second = [
            fmt_number(n_rows / t.seconds(name) if name in t else None, 0)
            for name in ("cython", "numpy", "torch")
        ]
        rows.append(
            [
                config.name,
                config.shape_label,
                n_rows,
                *per_second,
                fmt_ratio(t.ratio("numpy", "cython")),
                fmt_ratio(t.ratio("torch", "cython")),
            ]
        )
    return (
        f"Predict: rows/s over {n_rows:,} rows (higher is faster); ratios are time over "
        "Cython's time",
        [
            "config",
            "layers",
            "rows",
            "Cython",
            "NumPy",
            "PyTorch",
            "NumPy/Cython",
            "PyTorch/Cython",
        ],
        rows,
    )


def epoch_table(epoch):
    """Title, header and the one row of the epoch table."""
    config = CONFIGS[EPOCH_CONFIG]
    ms = [
        fmt_number(epoch.seconds(name) * 1e3 if name in epoch else None, 2)
        for name in ("cython", "numpy", "torch")
    ]
    row = [
        config.name,
        config.shape_label,
        f"{EPOCH_SAMPLES} / {config.batch_size}",
        *ms,
        fmt_ratio(epoch.ratio("numpy", "cython")),
        fmt_ratio(epoch.ratio("torch", "cython")),
    ]
    return (
        "One epoch: ms per epoch; ratios are time over Cython's time",
        [
            "config",
            "layers",
            "samples / batch",
            "Cython",
            "NumPy",
            "PyTorch",
            "NumPy/Cython",
            "PyTorch/Cython",
        ],
        [row],
    )


# --- targets ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A bound on a measured ratio: measured >= bound (at_least) or <= bound.

    gemm_only : for step speed-ups, NumPy's time over the GEMM floor's, the
        ratio a step that cost only its GEMMs would reach (None elsewhere).
    """

    what: str
    measured: float | None
    bound: float
    at_least: bool
    gemm_only: float | None = None

    @property
    def verdict(self):
        if self.measured is None:
            return "not measured"
        met = self.measured >= self.bound if self.at_least else self.measured <= self.bound
        return "met" if met else "NOT MET"


STEP_SPEEDUP_TARGETS = {"tiny": 14.0, "small": 1.7, "medium": 1.27, "large": 1.06}
FLOOR_OVERHEAD_TARGET = 1.10  # small, medium, large
EPOCH_SPEEDUP_TARGET = 10.0
PREDICT_SPEEDUP_TARGET = 1.0  # never slower than NumPy


def targets(steps, predictions, epoch):
    """The performance targets as Targets, with what was measured."""
    found = []
    for name, bound in STEP_SPEEDUP_TARGETS.items():
        found.append(
            Target(
                f"step {name}: NumPy/Cython",
                steps[name].ratio("numpy", "cython"),
                bound,
                True,
                gemm_only=steps[name].ratio("numpy", "floor"),
            )
        )
    for name in ("small", "medium", "large"):
        found.append(
            Target(
                f"step {name}: Cython/GEMM floor",
                steps[name].ratio("cython", "floor"),
                FLOOR_OVERHEAD_TARGET,
                False,
            )
        )
    found.append(
        Target(
            f"epoch {EPOCH_CONFIG}: NumPy/Cython",
            epoch.ratio("numpy", "cython"),
            EPOCH_SPEEDUP_TARGET,
            True,
        )
    )
    for name in CONFIGS:
        found.append(
            Target(
                f"predict {name}: NumPy/Cython",
                predictions[name].ratio("numpy", "cython"),
                PREDICT_SPEEDUP_TARGET,
                True,
            )
        )
    return found


UNSTEADY_SPREAD = 1.5


def print_unsteady(timings):
    """Name the figures whose rounds varied more than UNSTEADY_SPREAD."""
    unsteady = [
        f"{what} {name} ({t.spread(name):.1f}x)"
        for what, t in timings.items()
        for name in t.per_round
        if t.spread(name) > UNSTEADY_SPREAD
    ]
    if unsteady:
        print(
            f"\nrounds spanning more than {UNSTEADY_SPREAD}x (slowest/fastest), "
            "treat with care or rerun: " + ", ".join(unsteady)
        )
    else:
        print(f"\nevery figure's rounds stayed within {UNSTEADY_SPREAD}x of each other")


def targets_table(found, dtype):
    """Title, header and rows of the targets, each marked met or not."""
    note = "" if dtype == "float32" else " (they were set for float32)"
    rows = [
        [
            t.what,
            (">= " if t.at_least else "<= ") + f"{t.bound:g}x",
            fmt_ratio(t.measured),
            t.verdict,
            fmt_ratio(t.gemm_only),
        ]
        for t in found
    ]
    return (
        f"Targets{note}; 'GEMMs only' is NumPy/floor, the speed-up of a step that cost "
        "no more than its GEMMs",
        ["target", "wanted", "measured", "verdict", "GEMMs only"],
        rows,
    )


def main(argv=None):
    settings = parse_settings(argv)
    reason = workloads.cython_unavailable_reason()
    if reason:
        sys.exit(f"cannot compare: {reason}")
    if settings.gemm is not None:
        fastbp.gemm.use(settings.gemm)
    torch = torch_module(settings)
    print_header(settings, torch)
    started = time.perf_counter()

    steps = measure_steps(settings, torch)
    print_table(*step_table(steps))
    predictions = measure_predict(settings, torch)
    print_table(*predict_table(predictions, settings.predict_rows))
    epoch = measure_epoch(settings, torch)
    print_table(*epoch_table(epoch))
    layer_steps = measure_layers(settings)
    print_table(*layers_table(layer_steps))
    print_table(*targets_table(targets(steps, predictions, epoch), settings.dtype))

    print_unsteady(
        {
            **{f"step {name}": t for name, t in steps.items()},
            **{f"predict {name}": t for name, t in predictions.items()},
            f"epoch {EPOCH_CONFIG}": epoch,
            **{f"layers {name}": t for name, t in layer_steps.items()},
        }
    )
    load = f", load average now {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else ""
    print(f"\ntotal {time.perf_counter() - started:.0f} s{load}")


if __name__ == "__main__":
    main()
